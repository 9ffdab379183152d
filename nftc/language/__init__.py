"""The language: .zfw text -> typed policy model. Owns the grammar's generated parser, the parser (the Lark tree
never leaves it), syntax-error hints, the loader (includes, address files: the only file reading of the
compiler), the model (frozen dataclasses with spans), diagnostics (positioned errors and their rendering),
reserved (what nftc's table may be called, without loading the parser: the apply side checks names it reads
back); and text, the plain-text layout every stage prints with (aligned columns, how much of a long list is shown),
here because every package may import the language.

May import: the standard library only (and its own modules).
"""
