"""The command line: parses arguments, wires the stages, prints, and chooses exit codes. One module per command
family (main: the parser, dispatch and the one place errors become messages and exit codes; compile: compile,
check, catalog; apply: apply, confirm, rollback, diff, status; lab), and common: what they share. main imports
the families, they import common, none imports main. Nothing but nftc/__main__.py imports the cli.

May import: every other nftc package.
"""
