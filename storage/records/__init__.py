"""Records kept beside the images: accounts and who may do what (later: evaluations, signatures)."""
