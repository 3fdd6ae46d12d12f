"""The web dashboard under /ui: server-rendered pages over the same store and views as the API."""
