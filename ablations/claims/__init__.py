"""Claims and their decision procedure: the article's (article.py), the literature's and the bug
catalogue's, each a family settled with Holm's adjustment and seeds on demand."""
