"""The weekly review as a document to share: self-contained HTML (charts drawn offline by the
vendored uPlot), Markdown for a ticket, PDF through Chromium when it is installed (render.py), and
posted to the alert receivers (send.py). Everything shown comes from a `Review` record
(dashboard.analysis.review), the same the Weekly review page shows; no Streamlit here.
"""
