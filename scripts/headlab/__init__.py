"""headlab: "Revealing the Dark Secrets of BERT" for any BERT-family encoder; the workflow's library."""
