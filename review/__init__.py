"""The local review web app: inspect and overrule crops and duplicate clusters by clicking (see architecture.md)."""
