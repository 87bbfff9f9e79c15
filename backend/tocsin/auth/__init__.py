"""Accounts, roles and access tokens: who may do what.

Roles: operator drafts and edits alerts, approver approves and issues, planner runs exercises, admin manages users,
glossary_editor approves glossary changes, evaluator observes and rates exercises. A user may hold several.
"""
