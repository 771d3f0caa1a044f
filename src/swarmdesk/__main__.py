from swarmdesk.cli import app

app()
