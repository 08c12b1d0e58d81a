"""Indicators (指标化管理, 赋色管理): read models of everyone's integration events, as of any date, with colours."""
