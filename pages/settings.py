"""Settings: SKELETON, being written."""

from __future__ import annotations

import streamlit as st

st.title("Settings")
st.info("Being built.")
