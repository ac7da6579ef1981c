"""HTTP routers by area, and the dependencies they share."""
