"""The paper's figures and Table 1 from tables; plotting never computes results."""
