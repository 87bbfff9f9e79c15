"""The browser faces, served by Tocsin itself: the operators' console at /console/ (built from web/ into build/),
its configuration, the optional local base map, and the Content-Security-Policy every response carries."""
