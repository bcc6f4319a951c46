"""Build the example's three SQLite databases: a small online shop split by team.

    python make_db.py            # (re)writes shop.sqlite, sales.sqlite and support.sqlite here

The files are committed, so `pipec run catalog.pipe` works without this step; run it to start over
or to see exactly what the catalog describes. The data is fixed (no randomness): running it twice
gives the same tables and rows.

- `shop.sqlite` (schema `main`): the CRM, `customers` and `addresses`, and a view `customer_contacts`.
- `sales.sqlite` (attached as schema `sales`): `products`, `orders`, `order_items`, `payments`, and a
  view `daily_revenue`.
- `support.sqlite` (attached as schema `support`): `agents` and `tickets`.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path
from typing import Any

Rows = list[tuple[Any, ...]]

SHOP = """
CREATE TABLE customers (
    id             INTEGER PRIMARY KEY,
    first_name     TEXT NOT NULL,
    last_name      TEXT NOT NULL,
    email          TEXT NOT NULL UNIQUE,
    email_verified BOOLEAN NOT NULL DEFAULT 0,
    phone          TEXT,
    birth_date     DATE,
    loyalty_tier   TEXT NOT NULL DEFAULT 'basic',
    created_at     TIMESTAMP NOT NULL
);
CREATE TABLE addresses (
    id           INTEGER PRIMARY KEY,
    customer_id  INTEGER NOT NULL REFERENCES customers (id),
    street       TEXT NOT NULL,
    city         TEXT NOT NULL,
    postal_code  TEXT NOT NULL,
    country      TEXT NOT NULL,
    is_default   BOOLEAN NOT NULL DEFAULT 1
);
CREATE INDEX ix_addresses_customer ON addresses (customer_id);
CREATE VIEW customer_contacts AS
    SELECT c.id, c.first_name || ' ' || c.last_name AS full_name, c.email, c.phone, a.city, a.country
    FROM customers c LEFT JOIN addresses a ON a.customer_id = c.id AND a.is_default;
"""

SALES = """
CREATE TABLE products (
    sku          TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    category     TEXT NOT NULL,
    unit_price   NUMERIC(10, 2) NOT NULL
);
CREATE TABLE orders (
    id           INTEGER PRIMARY KEY,
    customer_id  INTEGER NOT NULL,
    ordered_at   TIMESTAMP NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('paid', 'pending', 'refunded')),
    total        NUMERIC(10, 2) NOT NULL,
    client_ip    TEXT
);
CREATE INDEX ix_orders_customer ON orders (customer_id);
CREATE TABLE order_items (
    order_id     INTEGER NOT NULL REFERENCES orders (id),
    sku          TEXT NOT NULL REFERENCES products (sku),
    quantity     INTEGER NOT NULL,
    PRIMARY KEY (order_id, sku)
);
CREATE TABLE payments (
    id           INTEGER PRIMARY KEY,
    order_id     INTEGER NOT NULL REFERENCES orders (id),
    card_number  TEXT,
    iban         TEXT,
    amount       NUMERIC(10, 2) NOT NULL,
    paid_at      TIMESTAMP NOT NULL
);
CREATE VIEW daily_revenue AS
    SELECT date(ordered_at) AS day, count(*) AS orders, sum(total) AS revenue
    FROM orders WHERE status = 'paid' GROUP BY date(ordered_at);
"""

SUPPORT = """
CREATE TABLE agents (
    id             INTEGER PRIMARY KEY,
    full_name      TEXT NOT NULL,
    work_email     TEXT NOT NULL UNIQUE,
    password_hash  TEXT NOT NULL
);
CREATE TABLE tickets (
    id             INTEGER PRIMARY KEY,
    customer_id    INTEGER NOT NULL,
    agent_id       INTEGER REFERENCES agents (id),
    subject        TEXT NOT NULL,
    body           TEXT NOT NULL,
    contact_phone  TEXT,
    opened_at      TIMESTAMP NOT NULL,
    closed_at      TIMESTAMP
);
"""

CUSTOMERS = [
    (1, "Ada", "Lovelace", "ada@example.com", 1, "+44 20 7946 0001", "1815-12-10",
      "gold", "2024-01-03 09:12:00"),
    (2, "Grace", "Hopper", "grace@example.org", 1, "+1 212 555 0102", "1906-12-09",
      "gold", "2024-01-05 14:30:00"),
    (3, "Alan", "Turing", "alan@example.co.uk", 0, None, "1912-06-23", "basic", "2024-02-11 08:01:00"),
    (4, "Katherine", "Johnson", "kj@example.com", 1, "+1 757 555 0147", "1918-08-26",
      "silver", "2024-02-20 17:45:00"),
    (5, "Edsger", "Dijkstra", "ewd@example.nl", 0, "+31 20 555 0199", "1930-05-11",
      "basic", "2024-03-02 11:00:00"),
    (6, "Barbara", "Liskov", "liskov@example.edu", 1, None, "1939-11-07", "silver", "2024-03-15 10:20:00"),
    (7, "Donald", "Knuth", "knuth@example.edu", 1, "+1 650 555 0123", "1938-01-10",
      "basic", "2024-04-01 16:05:00"),
    (8, "Margaret", "Hamilton", "mh@example.com", 1, "+1 617 555 0164", "1936-08-17",
      "gold", "2024-04-18 13:33:00"),
]

ADDRESSES = [
    (1, 1, "12 St James's Square", "London", "SW1Y 4JH", "GB", 1),
    (2, 2, "1 Liberty Plaza", "New York", "10006", "US", 1),
    (3, 3, "Sherborne Lane 3", "Wilmslow", "SK9 1AA", "GB", 1),
    (4, 4, "210 Langley Blvd", "Hampton", "23681", "US", 1),
    (5, 5, "Plantage Muidergracht 12", "Amsterdam", "1018 TV", "NL", 1),
    (6, 6, "32 Vassar St", "Cambridge", "02139", "US", 1),
    (7, 7, "353 Jane Stanford Way", "Stanford", "94305", "US", 1),
    (8, 8, "77 Massachusetts Ave", "Cambridge", "02139", "US", 1),
    (9, 8, "1 Houston Space Center", "Houston", "77058", "US", 0),
]

PRODUCTS = [
    ("KB-01", "Mechanical keyboard", "hardware", 89.00),
    ("MS-02", "Wireless mouse", "hardware", 29.50),
    ("BK-10", "The Art of Computer Programming", "books", 199.99),
    ("BK-11", "Structured Programming", "books", 24.90),
    ("MG-05", "Coffee mug", "merch", 9.00),
]

ORDERS = [
    (1001, 1, "2024-05-01 10:00:00", "paid", 118.50, "203.0.113.7"),
    (1002, 2, "2024-05-01 12:30:00", "paid", 199.99, "198.51.100.23"),
    (1003, 3, "2024-05-02 09:15:00", "pending", 24.90, None),
    (1004, 4, "2024-05-02 18:40:00", "paid", 98.00, "192.0.2.55"),
    (1005, 5, "2024-05-03 08:05:00", "refunded", 29.50, "203.0.113.99"),
    (1006, 8, "2024-05-03 21:12:00", "paid", 233.99, "198.51.100.4"),
]

ORDER_ITEMS = [
    (1001, "KB-01", 1), (1001, "MS-02", 1),
    (1002, "BK-10", 1),
    (1003, "BK-11", 1),
    (1004, "KB-01", 1), (1004, "MG-05", 1),
    (1005, "MS-02", 1),
    (1006, "BK-10", 1), (1006, "MG-05", 1), (1006, "BK-11", 1),
]

PAYMENTS = [
    (1, 1001, "4111 1111 1111 1111", None, 118.50, "2024-05-01 10:01:00"),
    (2, 1002, None, "GB82 WEST 1234 5698 7654 32", 199.99, "2024-05-01 12:31:00"),
    (3, 1004, "5500 0000 0000 0004", None, 98.00, "2024-05-02 18:41:00"),
    (4, 1005, "4111 1111 1111 1111", None, 29.50, "2024-05-03 08:06:00"),
    (5, 1006, None, "DE89 3704 0044 0532 0130 00", 233.99, "2024-05-03 21:13:00"),
]

AGENTS = [
    (1, "Sam Carter", "sam.carter@shop.example", "pbkdf2_sha256$600000$c2FsdA$Zm9v"),
    (2, "Robin Lee", "robin.lee@shop.example", "pbkdf2_sha256$600000$c2FsdB$YmFy"),
]

TICKETS = [
    (1, 3, 1, "Order 1003 still pending", "I paid by card ending 1111 but the order is pending.",
     None, "2024-05-03 09:00:00", None),
    (2, 5, 2, "Refund", "Please refund order 1005, the mouse arrived broken.",
     "+31 20 555 0199", "2024-05-03 10:30:00", "2024-05-04 15:00:00"),
    (3, 1, 1, "Invoice address", "Please send invoices to ada@example.com.",
     "+44 20 7946 0001", "2024-05-04 11:45:00", "2024-05-04 12:10:00"),
]


def build(folder: Path) -> None:
    """Write the three databases into `folder`, replacing existing ones."""
    specs: dict[str, tuple[str, dict[str, Rows]]] = {
        "shop.sqlite": (SHOP, {"customers": CUSTOMERS, "addresses": ADDRESSES}),
        "sales.sqlite": (
            SALES,
            {"products": PRODUCTS, "orders": ORDERS, "order_items": ORDER_ITEMS, "payments": PAYMENTS},
        ),
        "support.sqlite": (SUPPORT, {"agents": AGENTS, "tickets": TICKETS}),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, (ddl, tables) in specs.items():
        path = folder / name
        path.unlink(missing_ok=True)
        with sqlite3.connect(path) as connection:
            connection.executescript(ddl)
            for table, rows in tables.items():
                marks = ", ".join("?" * len(rows[0]))
                connection.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
        connection.close()
        print(f"wrote {path}")


if __name__ == "__main__":
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent)
