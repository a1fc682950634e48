package storage

import "strconv"

// Dialect is the SQL dialect of a database: the stores write their statements once, with '?'
// placeholders, and Rebind turns them into the dialect's.
type Dialect int

// The dialects. The zero value is SQLite, the embedded default.
const (
	// SQLite is the embedded database (modernc.org/sqlite): '?' placeholders.
	SQLite Dialect = iota
	// Postgres is PostgreSQL (pgx): '$1', '$2', ... placeholders.
	Postgres
)

// String names the dialect ("sqlite", "postgres").
func (d Dialect) String() string {
	if d == Postgres {
		return "postgres"
	}
	return "sqlite"
}

// Rebind returns query with its '?' placeholders in d's form. A '?' inside a quoted string or
// identifier ('...', "...") is left alone. For SQLite it returns query unchanged.
func (d Dialect) Rebind(query string) string {
	if d != Postgres {
		return query
	}
	out := make([]byte, 0, len(query)+8)
	n := 0
	var quote byte
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?':
			n++
			out = append(out, '$')
			out = strconv.AppendInt(out, int64(n), 10)
			continue
		}
		out = append(out, c)
	}
	return string(out)
}

// ForUpdate is the clause that ends a SELECT whose rows the transaction then updates: " FOR
// UPDATE" on PostgreSQL (the rows stay locked until the transaction ends, and a concurrent
// transaction's SELECT ... FOR UPDATE waits and then reads what it committed), "" on SQLite
// (whose writers run one at a time).
func (d Dialect) ForUpdate() string {
	if d == Postgres {
		return " FOR UPDATE"
	}
	return ""
}
