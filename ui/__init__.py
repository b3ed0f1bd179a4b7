"""The Textual UI (imported only when a screen is drawn).

A bare Escape is told from the start of a key's escape sequence by waiting:
Textual waits ``$ESCDELAY`` ms (curses' variable), 100 by default, which put
every view's "esc back" over the 100 ms a key may take. 50 ms keeps arrow and
function keys whole on a local terminal or an ssh session (their bytes come
together) and is set here, before Textual reads it, unless the user set it.
"""

import os

os.environ.setdefault("ESCDELAY", "50")
