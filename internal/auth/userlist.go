package auth

import (
	"bytes"
	"fmt"
	"io"
	"strings"
)

// UserlistError reports a syntax error in a userlist; Line is 1-based.
// Callers can prefix the file name: fmt.Sprintf("%s:%d: %s", file, e.Line, e.Msg).
type UserlistError struct {
	Line int
	Msg  string
}

func (e *UserlistError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// ParseUserlist reads a PgBouncer auth_file (userlist.txt). Each entry is
// one line:
//
//	"username" "password"
//
// Inside the quotes a doubled quote ("") stands for one '"'. Anything after
// the password on the same line is ignored (as PgBouncer does). Blank lines
// and lines whose first non-blank character is ';' or '#' are skipped. The
// password is classified by ParseSecret, except that a value starting with
// "SCRAM-SHA-256$" that is not a valid verifier is an error here (a typo
// must not silently become a plaintext password). A later entry for the
// same user replaces an earlier one. Errors are *UserlistError.
func ParseUserlist(r io.Reader) (map[string]Secret, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	users := make(map[string]Secret)
	lineNo := 0
	for len(data) > 0 {
		lineNo++
		var line []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			line, data = data, nil
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		p := skipBlanks(line, 0)
		if p == len(line) || line[p] == ';' || line[p] == '#' {
			continue
		}
		fail := func(format string, args ...any) (map[string]Secret, error) {
			return nil, &UserlistError{Line: lineNo, Msg: fmt.Sprintf(format, args...)}
		}
		user, p, ok := quoted(line, p)
		if !ok {
			if line[skipBlanks(line, 0)] != '"' {
				return fail("expected a quoted user name")
			}
			return fail("unterminated quoted user name")
		}
		p = skipBlanks(line, p)
		if p == len(line) || line[p] != '"' {
			return fail("expected a quoted password after the user name")
		}
		pass, _, ok := quoted(line, p)
		if !ok {
			return fail("unterminated quoted password")
		}
		switch {
		case user == "":
			return fail("empty user name")
		case strings.IndexByte(user, 0) >= 0:
			return fail("NUL byte in user name")
		case strings.IndexByte(pass, 0) >= 0:
			return fail("NUL byte in password")
		}
		sec := ParseSecret(pass)
		if sec.Kind == SecretPlain && strings.HasPrefix(pass, scramPrefix) {
			return fail("malformed SCRAM-SHA-256 secret for user %q", user)
		}
		users[user] = sec
	}
	return users, nil
}

func skipBlanks(b []byte, p int) int {
	for p < len(b) && (b[p] == ' ' || b[p] == '\t' || b[p] == '\v' || b[p] == '\f') {
		p++
	}
	return p
}

// quoted parses a "..." string starting at b[p] == '"', with "" as an
// escaped quote; it returns the unescaped value and the index after the
// closing quote.
func quoted(b []byte, p int) (string, int, bool) {
	if p >= len(b) || b[p] != '"' {
		return "", p, false
	}
	var sb strings.Builder
	for i := p + 1; i < len(b); i++ {
		if b[i] != '"' {
			sb.WriteByte(b[i])
			continue
		}
		if i+1 < len(b) && b[i+1] == '"' {
			sb.WriteByte('"')
			i++
			continue
		}
		return sb.String(), i + 1, true
	}
	return "", len(b), false
}
