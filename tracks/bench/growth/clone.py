"""Grow a ledger quickly: copies of real runs' rows under fresh run IDs, whatever the columns.

The growth bench (:mod:`tracks.bench.growth`) needs a million runs' worth of tables in minutes,
not the hour real runs take. It takes the rows a real wave of runs left in every table that has
a ``correlation_id`` column (the template) and inserts copies of them, one copy per clone number
``g``, with:

- ``correlation_id``: ``md5(<template id> || ':' || g)`` — 32 hex digits, like the runtime's
  ``uuid4().hex``, random in every index, and the same in every table for one copy, so a cloned
  run's steps, logs and run row belong together as a real run's do;
- every ``uuid`` column: a fresh value keeping the template value's first 18 characters (a
  time-ordered UUID keeps its time prefix), the rest derived from the value and ``g``, so two
  columns that held the same id (a step's claim and its ``started`` row) still do;
- every timestamp column: moved back by ``history_s * (copies - g + 1) / copies`` seconds, so the
  copies spread over the last ``history_s`` seconds, oldest first (ids grow with time, as they do
  for real rows);
- every other column: the template's value. Identity, generated and serial columns are left to
  their defaults.

Nothing here names a column other than ``correlation_id``: the tables may change underneath.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

__all__ = ["Template", "backdate", "clone", "template"]

_TABLES_SQL = """
SELECT c.relname FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')
  AND NOT c.relispartition AND a.attname = 'correlation_id' AND NOT a.attisdropped
ORDER BY 1
"""
_COLUMNS_SQL = """
SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type
FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
  AND a.attidentity = '' AND a.attgenerated = ''
  AND coalesce(pg_get_expr(d.adbin, d.adrelid), '') NOT LIKE 'nextval(%'
ORDER BY a.attnum
"""
_OF_RUNS = "WHERE correlation_id = ANY($1)"
_TIMESTAMPS = ("timestamp with time zone", "timestamp without time zone")
_SHIFT = "(($3::double precision * ($4::int - g + 1) / $4::int) * interval '1 second')"


@dataclass(frozen=True)
class Template:
    """The runs to copy and, per table holding rows of theirs, its insertable columns and types."""

    cids: list[str]
    columns: dict[str, list[tuple[str, str]]]

    @property
    def tables(self) -> list[str]:
        return list(self.columns)


async def template(conn: asyncpg.Connection, cids: list[str]) -> Template:
    """The tables that hold rows of ``cids`` (every table with a ``correlation_id`` column)."""
    columns: dict[str, list[tuple[str, str]]] = {}
    for r in await conn.fetch(_TABLES_SQL):
        table = r["relname"]
        if await conn.fetchval(f'SELECT EXISTS (SELECT 1 FROM "{table}" {_OF_RUNS})', cids):
            cols = await conn.fetch(_COLUMNS_SQL, f'"{table}"')
            columns[table] = [(c["name"], c["type"]) for c in cols]
    return Template(cids, columns)


def _expression(name: str, type_: str) -> str:
    col = f'src."{name}"'
    if name == "correlation_id":
        return f"md5({col} || ':' || g)"
    if type_ == "uuid":
        return f"overlay(md5({col}::text || ':' || g)::uuid::text placing left({col}::text, 18) from 1)::uuid"
    if type_ in _TIMESTAMPS:
        return f"{col} - {_SHIFT}"
    return col


def _insert_sql(table: str, columns: list[tuple[str, str]]) -> str:
    names = ", ".join(f'"{n}"' for n, _ in columns)
    values = ", ".join(_expression(n, t) for n, t in columns)
    return (
        f'INSERT INTO "{table}" ({names}) SELECT {values} '
        f"FROM generate_series($1::int, $2::int) g, "
        f'(SELECT * FROM "{table}" WHERE correlation_id = ANY($5::text[]) '
        "AND $3::double precision >= 0 AND $4::int > 0) src ORDER BY g"
    )


async def backdate(conn: asyncpg.Connection, tpl: Template, seconds: float) -> None:
    """Move the template's own rows ``seconds`` back: the oldest history, as their ids are lowest."""
    for table, columns in tpl.columns.items():
        stamps = [n for n, t in columns if t in _TIMESTAMPS]
        if stamps:
            sets = ", ".join(f'"{n}" = "{n}" - $1 * interval \'1 second\'' for n in stamps)
            sql = f'UPDATE "{table}" SET {sets} WHERE correlation_id = ANY($2)'
            await conn.execute(sql, seconds, tpl.cids)


async def clone(
    conn: asyncpg.Connection,
    tpl: Template,
    first: int,
    last: int,
    *,
    copies: int,
    history_s: float,
    rows_per_statement: int = 200_000,
) -> int:
    """Copies ``first``..``last`` (1-based, of ``copies`` in all) of the template; rows inserted."""
    inserted = 0
    for table, columns in tpl.columns.items():
        per_copy = await conn.fetchval(f'SELECT count(*) FROM "{table}" {_OF_RUNS}', tpl.cids)
        step = max(1, rows_per_statement // max(1, per_copy))
        sql = _insert_sql(table, columns)
        for lo in range(first, last + 1, step):
            hi = min(last, lo + step - 1)
            status = await conn.execute(sql, lo, hi, history_s, copies, tpl.cids)
            inserted += int(status.rsplit(" ", 1)[-1])
    return inserted
