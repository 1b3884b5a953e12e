"""What the daemon's two HTTP fronts share (the API, comptoir.api, for the dispensing software;
the counter screen, comptoir.screen, for the pharmacist's browser): the event feed, the JSON
representation of a transaction, the request-body reader and the strict JSON body parser,
each domain error's HTTP status, and the cap on open connections. Neither front imports the
other; both import this."""
