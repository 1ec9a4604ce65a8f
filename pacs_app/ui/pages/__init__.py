"""One module per page: the page function and its own substate."""
