"""The command line: parse, call the library, print (console.py owns all output)."""
