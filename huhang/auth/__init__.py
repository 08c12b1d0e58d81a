"""Who is calling: authentication (tokens, accounts) and the principal every route acts for."""
