"""The task application the agent operates: a Tk window drawn from a task's layout.

    python -m <package>.computer_use.app LAYOUT.json STATE.json

It fills the screen, draws the widgets at the layout's pixel boxes, and rewrites STATE.json
atomically (temporary file + rename) after every event that matters, so the grader reads
what really happened on screen. It writes ``{"ready": true}`` once the window is mapped.
Started before LAYOUT.json exists (a warm pool's desktop), it connects to the display, writes
``{"waiting": true}`` and draws the task once LAYOUT.json appears.
"""

from __future__ import annotations

import json
import os
import sys
import time
import tkinter as tk
from pathlib import Path
from typing import Any

FONT = ("DejaVu Sans", 13)
KEEP = 40  # events kept in the state file


class TaskApp:
    def __init__(self, root: tk.Tk, layout: dict[str, Any], state_path: Path) -> None:
        self.root, self.layout, self.path = root, layout, state_path
        self.state: dict[str, Any] = {"ready": False, "pressed": [], "events": [], "keys": []}
        root.configure(background="#f4f4f0")
        tk.Label(root, text="Task board", font=("DejaVu Sans", 18, "bold"), bg="#f4f4f0").place(
            x=40, y=30
        )
        for name in ("buttons", "fields", "list", "slider", "entry"):
            if name in layout:
                getattr(self, f"draw_{name}")()
        root.bind_all("<ButtonPress>", self.on_press, add="+")
        root.bind_all("<KeyPress>", self.on_key, add="+")
        root.bind_all("<Motion>", self.on_motion, add="+")
        root.bind("<Map>", lambda _: root.after(50, self.ready))

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state))
        os.replace(tmp, self.path)

    def ready(self) -> None:
        self.state["ready"] = True
        self.save()

    def place(self, widget: tk.Widget, b: dict[str, int]) -> None:
        widget.place(x=b["x"], y=b["y"], width=b["w"], height=b["h"])

    # -- widgets ---------------------------------------------------------------------------

    def draw_buttons(self) -> None:
        for spec in self.layout["buttons"]:
            label = spec["label"]
            button = tk.Button(
                self.root, text=label, font=FONT, command=lambda t=label: self.press(t)
            )
            self.place(button, spec)

    def press(self, label: str) -> None:
        self.state["pressed"].append(label)
        self.save()

    def draw_fields(self) -> None:
        self.entries: dict[str, tk.Entry] = {}
        for spec in self.layout["fields"]:
            tk.Label(self.root, text=spec["name"], font=FONT, bg="#f4f4f0", anchor="e").place(
                x=spec["x"] - 110, y=spec["y"], width=100, height=spec["h"]
            )
            entry = tk.Entry(self.root, font=FONT)
            self.place(entry, spec)
            self.entries[spec["name"]] = entry
        submit = tk.Button(self.root, text="Submit", font=FONT, command=self.submit)
        self.place(submit, self.layout["submit"])

    def submit(self) -> None:
        self.state["submitted"] = {name: e.get() for name, e in self.entries.items()}
        self.save()

    def draw_list(self) -> None:
        b, self.offset = self.layout["list"], 0
        self.canvas = tk.Canvas(
            self.root, bg="white", highlightthickness=1, highlightbackground="#888"
        )
        self.place(self.canvas, b)
        self.selected: int | None = None
        self.canvas.bind("<Button-4>", lambda _: self.scroll(-1))
        self.canvas.bind("<Button-5>", lambda _: self.scroll(1))
        self.canvas.bind("<Button-1>", lambda e: self.select(e.y, chosen=False))
        self.canvas.bind("<Double-Button-1>", lambda e: self.select(e.y, chosen=True))
        self.redraw_list()

    def redraw_list(self) -> None:
        row, items, c = self.layout["row"], self.layout["items"], self.canvas
        c.delete("all")
        for i, item in enumerate(items[self.offset :]):
            top = i * row
            if i + self.offset == self.selected:
                c.create_rectangle(
                    0, top, self.layout["list"]["w"], top + row, fill="#cde", width=0
                )
            c.create_text(12, top + row // 2, text=item, anchor="w", font=FONT)

    def scroll(self, rows: int) -> None:
        visible = self.layout["list"]["h"] // self.layout["row"]
        last = max(0, len(self.layout["items"]) - visible)
        self.offset = min(max(self.offset + rows, 0), last)
        self.state["list_offset"] = self.offset
        self.redraw_list()
        self.save()

    def select(self, y: int, *, chosen: bool) -> None:
        index = self.offset + y // self.layout["row"]
        if index < len(self.layout["items"]):
            self.selected = index
            if chosen:
                self.state["chosen"] = self.layout["items"][index]
            self.redraw_list()
            self.save()

    def draw_slider(self) -> None:
        b = self.layout["slider"]
        self.slider_canvas = c = tk.Canvas(self.root, bg="#f4f4f0", highlightthickness=0)
        self.place(c, b)
        c.create_line(20, 30, 420, 30, width=4, fill="#666")
        for v in range(0, 101, 10):
            c.create_line(20 + 4 * v, 40, 20 + 4 * v, 46, fill="#666")
        self.handle = c.create_rectangle(0, 0, 0, 0, fill="#37c", outline="#124")
        self.value_label = tk.Label(self.root, font=FONT, bg="#f4f4f0")
        self.value_label.place(x=b["x"] + b["w"] + 10, y=b["y"] + 16)
        self.state["slider"] = self.layout["start"]
        self.move_handle(self.layout["start"])
        c.bind("<ButtonPress-1>", self.drag)
        c.bind("<B1-Motion>", self.drag)
        c.bind("<ButtonRelease-1>", lambda e: (self.drag(e), self.save()))

    def move_handle(self, value: int) -> None:
        x = 20 + 4 * value
        self.slider_canvas.coords(self.handle, x - 7, 16, x + 7, 44)
        self.value_label.configure(text=str(value))

    def drag(self, event: tk.Event) -> None:
        value = min(max(round((event.x - 20) / 4), 0), 100)
        self.state["slider"] = value
        self.move_handle(value)

    def draw_entry(self) -> None:
        self.entry = tk.Entry(self.root, font=FONT)
        self.place(self.entry, self.layout["entry"])
        self.entry.bind("<Return>", self.enter)

    def enter(self, _: tk.Event) -> None:
        self.state["entered"] = self.entry.get()
        self.save()

    # -- what every action leaves behind ------------------------------------------------------

    def log(self, key: str, item: Any) -> None:
        self.state[key] = [*self.state[key][-KEEP + 1 :], item]
        self.save()

    def on_press(self, event: tk.Event) -> None:
        self.log("events", {"button": event.num, "x": event.x_root, "y": event.y_root})

    def on_key(self, event: tk.Event) -> None:
        self.log("keys", event.keysym)

    def on_motion(self, event: tk.Event) -> None:
        self.state["pointer"] = [event.x_root, event.y_root]
        self.save()


def main() -> None:
    layout_path, state_path = (Path(p) for p in sys.argv[1:3])
    root = tk.Tk(className="TaskApp")
    root.withdraw()  # unmapped until it has a task
    if not layout_path.exists():  # started ahead of its task (a warm pool): say so, then wait
        state_path.with_suffix(".tmp").write_text(json.dumps({"ready": False, "waiting": True}))
        os.replace(state_path.with_suffix(".tmp"), state_path)
        while not layout_path.exists():
            time.sleep(0.005)
    layout = json.loads(layout_path.read_text())
    root.overrideredirect(True)  # no window manager: the window is the whole screen
    root.geometry(f"{root.winfo_screenwidth()}x{root.winfo_screenheight()}+0+0")
    TaskApp(root, layout, state_path)
    root.deiconify()
    root.mainloop()


if __name__ == "__main__":
    main()
