package storage

import (
	"context"
	"database/sql"
)

// Scanner is what scanning one row needs: *sql.Row and *sql.Rows have it.
type Scanner interface{ Scan(dest ...any) error }

// Querier runs a query: *sql.DB and *sql.Tx are Queriers.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// QueryAll runs query on q and returns every row, in order, as scan reads it; nil when there
// is none. The rows are closed before it returns.
func QueryAll[T any](ctx context.Context, q Querier, scan func(Scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
