"""digestbot: a self-hosted Discord + Slack bot for a team's reading."""
