"""What a run tells its reader: round summaries, data cards, the audit, the HTML report and
the experiment trackers."""
