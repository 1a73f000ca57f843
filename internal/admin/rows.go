package admin

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/poolmgr/poolmgr/internal/pgproto"
)

// Type is a result column's type.
type Type uint8

// Column types: text, and the numeric types PgBouncer reports numbers with.
const (
	Text    Type = iota
	Int8         // bigint
	Numeric      // fractional numbers
)

// PostgreSQL type OIDs and sizes of the column types.
const (
	OIDText    = 25
	OIDInt8    = 20
	OIDNumeric = 1700
)

func (t Type) oid() (oid uint32, size int16) {
	switch t {
	case Int8:
		return OIDInt8, 8
	case Numeric:
		return OIDNumeric, -1
	}
	return OIDText, -1
}

// Column is one column of a result.
type Column struct {
	Name string
	Type Type
}

// Result is one row set: RowDescription, DataRows, CommandComplete.
type Result struct {
	Cols []Column
	Rows [][]any
	Tag  string // CommandComplete tag; "SHOW" when empty
}

// NewResult returns a result with the given columns; each spec is "name"
// (text), "name:int" (int8) or "name:num" (numeric).
func NewResult(specs ...string) *Result {
	r := &Result{}
	for _, s := range specs {
		c := Column{Name: s}
		if n := len(s); n > 4 && s[n-4:] == ":int" {
			c = Column{Name: s[:n-4], Type: Int8}
		} else if n > 4 && s[n-4:] == ":num" {
			c = Column{Name: s[:n-4], Type: Numeric}
		}
		r.Cols = append(r.Cols, c)
	}
	return r
}

// Add appends a row; it panics if the number of values is wrong (a bug).
func (r *Result) Add(vals ...any) {
	if len(vals) != len(r.Cols) {
		panic(fmt.Sprintf("admin: row has %d values for %d columns", len(vals), len(r.Cols)))
	}
	r.Rows = append(r.Rows, vals)
}

// AppendRowDescription appends a RowDescription for cols (text format).
func AppendRowDescription(dst []byte, cols []Column) []byte {
	dst, off := pgproto.Begin(dst, pgproto.MsgRowDescription)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(cols)))
	for _, c := range cols {
		oid, size := c.Type.oid()
		dst = pgproto.AppendCString(dst, c.Name)
		dst = binary.BigEndian.AppendUint32(dst, 0) // table OID
		dst = binary.BigEndian.AppendUint16(dst, 0) // column number
		dst = binary.BigEndian.AppendUint32(dst, oid)
		dst = binary.BigEndian.AppendUint16(dst, uint16(size))
		dst = binary.BigEndian.AppendUint32(dst, math.MaxUint32) // typmod -1
		dst = binary.BigEndian.AppendUint16(dst, 0)              // text format
	}
	return pgproto.Finish(dst, off)
}

// AppendDataRow appends a DataRow; nil values are NULL.
func AppendDataRow(dst []byte, vals []any) []byte {
	dst, off := pgproto.Begin(dst, pgproto.MsgDataRow)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(vals)))
	for _, v := range vals {
		s, null := FormatValue(v)
		if null {
			dst = binary.BigEndian.AppendUint32(dst, math.MaxUint32) // -1
			continue
		}
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(s)))
		dst = append(dst, s...)
	}
	return pgproto.Finish(dst, off)
}

// AppendResult appends the whole result set and its CommandComplete.
func AppendResult(dst []byte, r *Result) []byte {
	dst = AppendRowDescription(dst, r.Cols)
	for _, row := range r.Rows {
		dst = AppendDataRow(dst, row)
	}
	tag := r.Tag
	if tag == "" {
		tag = "SHOW"
	}
	return pgproto.AppendCommandComplete(dst, tag)
}

// FormatValue renders a value in PostgreSQL's text format.
func FormatValue(v any) (s string, null bool) {
	switch x := v.(type) {
	case nil:
		return "", true
	case string:
		return x, false
	case int:
		return strconv.Itoa(x), false
	case int32:
		return strconv.FormatInt(int64(x), 10), false
	case int64:
		return strconv.FormatInt(x, 10), false
	case uint32:
		return strconv.FormatUint(uint64(x), 10), false
	case uint64:
		return strconv.FormatUint(x, 10), false
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return "", true
		}
		return strconv.FormatFloat(x, 'f', -1, 64), false
	case bool:
		if x {
			return "1", false
		}
		return "0", false
	case time.Time:
		if x.IsZero() {
			return "", true
		}
		return x.UTC().Format("2006-01-02 15:04:05 MST"), false
	case time.Duration:
		return strconv.FormatFloat(x.Seconds(), 'f', -1, 64), false
	case fmt.Stringer:
		return x.String(), false
	}
	return fmt.Sprint(v), false
}
