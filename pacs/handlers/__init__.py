"""One module per DIMSE service; each handler translates the protocol into archive calls."""
