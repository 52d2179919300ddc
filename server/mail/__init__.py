"""Reports and traffic alerts by e-mail: what is due (scheduler.py), what it says (report.py,
alerts.py), how it is written (letters.py, bar_chart.py) and sent (smtp.py)."""
