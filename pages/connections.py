"""Connections: SKELETON, being written."""

from __future__ import annotations

import streamlit as st

st.title("Connections")
st.info("Being built.")
