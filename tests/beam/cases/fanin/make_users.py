"""Writes users.sqlite (the `users` pipeline's input); the tests call `make(folder)`."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def make(folder: Path) -> None:
    connection = sqlite3.connect(folder / "users.sqlite")
    with connection:
        connection.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INTEGER)")
        connection.executemany(
            "INSERT INTO users VALUES (?, ?, ?)",
            [(i, f"user {i}", 10 + (i * 7) % 40) for i in range(1, 31)],
        )
    connection.close()


if __name__ == "__main__":
    make(Path("."))
