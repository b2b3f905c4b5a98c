// Sent with the 401 answer of the viewer page: go to the login page, keeping the viewer route (#/...) to come back to.
location.replace(`/login${location.hash ? `?next=${encodeURIComponent(location.hash)}` : ""}`);
