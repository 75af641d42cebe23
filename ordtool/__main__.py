from ordtool.cli.main import run

run()
