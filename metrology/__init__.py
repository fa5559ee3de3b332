"""The pure metrology domain of calstream.

Values in, values out: no I/O, no wall clock (time is always passed in, as UTC epoch seconds),
no hidden state. Everything else in calstream meets in the types defined here.
"""
