"""Replication: SKELETON, being written."""

from __future__ import annotations

import streamlit as st

st.title("Replication")
st.info("Being built.")
