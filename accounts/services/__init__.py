"""Business logic for traders, cTIDs, tokens and trading accounts (see DESIGN.md, conventions)."""
