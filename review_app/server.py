"""What `hfaid review` serves: the Streamlit pages (app.py) plus the review API and the /media
guard, as one Starlette app (st.App), so a vote is an HTTP request instead of a script rerun."""

from pathlib import Path

import streamlit as st
from starlette.middleware import Middleware

from review_app.api import ROUTES, Gate

app = st.App(
    Path(__file__).with_name("app.py"), routes=ROUTES, middleware=[Middleware(Gate)]
)
