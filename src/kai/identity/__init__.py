"""Identity: people, organizations, teams, roles, tokens, API keys, MFA, SSO and audit."""
