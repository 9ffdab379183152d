"""The command line: parses arguments, wires the stages, prints, and chooses exit codes. One module per command
family (main: the parser and dispatch; compile: compile, check, catalog; apply: apply, confirm, rollback, diff,
status; lab). Nothing else imports it.

May import: every other nftc package.
"""
