"""Plans: running EXPLAIN through the guarded door, reading what it returns, and saying what is wrong.

Above the advisor (a sequential scan's finding names the index it would propose), below the
analyses; no Streamlit here.
"""
