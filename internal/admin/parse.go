package admin

import (
	"fmt"
	"strings"
)

// Command is one parsed console statement.
type Command struct {
	Verb string   // upper-cased first word: SHOW, PAUSE, KILL, SET, ...
	What string   // SHOW's subject, upper-cased (POOLS); empty for other verbs
	Args []string // remaining words; unquoted identifiers are lower-cased, "quoted" ones kept
	Text string   // the statement as typed (trimmed, without the ';')
}

// SyntaxError is a statement the console cannot parse.
type SyntaxError struct{ Msg string }

func (e *SyntaxError) Error() string { return e.Msg }

// Parse splits sql into statements on ';' (outside quotes) and parses each.
// Empty statements are dropped; an all-empty query returns no commands.
func Parse(sql string) ([]Command, error) {
	var out []Command
	for _, stmt := range splitStatements(sql) {
		text := strings.TrimSpace(stmt)
		if text == "" {
			continue
		}
		toks, err := tokenize(text)
		if err != nil {
			return nil, err
		}
		if len(toks) == 0 { // only comments
			continue
		}
		if toks[0].quoted {
			return nil, &SyntaxError{fmt.Sprintf("syntax error at %q: a command starts with a keyword", toks[0].s)}
		}
		cmd := Command{Verb: strings.ToUpper(toks[0].s), Text: text}
		rest := toks[1:]
		if cmd.Verb == "SHOW" {
			if len(rest) == 0 {
				return nil, &SyntaxError{"SHOW needs a subject: SHOW HELP lists them"}
			}
			cmd.What = strings.ToUpper(rest[0].s)
			rest = rest[1:]
		}
		for _, t := range rest {
			if t.quoted {
				cmd.Args = append(cmd.Args, t.s)
			} else {
				cmd.Args = append(cmd.Args, strings.ToLower(t.s))
			}
		}
		out = append(out, cmd)
	}
	return out, nil
}

// splitStatements splits on ';' outside single/double quotes.
func splitStatements(sql string) []string {
	var out []string
	start := 0
	var quote byte
	for i := 0; i < len(sql); i++ {
		ch := sql[i]
		switch {
		case quote != 0:
			if ch == quote {
				quote = 0 // a doubled quote re-enters at the next char: fine for splitting
			}
		case ch == '\'' || ch == '"':
			quote = ch
		case ch == ';':
			out = append(out, sql[start:i])
			start = i + 1
		}
	}
	return append(out, sql[start:])
}

type token struct {
	s      string
	quoted bool
}

// tokenize splits a statement into words: bare words (letters, digits and
// _ . : - [ ] / *), "double-quoted identifiers", 'single-quoted strings'
// (quotes doubled to escape), and '=' (kept as a word). -- comments are skipped.
func tokenize(s string) ([]token, error) {
	var out []token
	for i := 0; i < len(s); {
		ch := s[i]
		switch {
		case ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r':
			i++
		case ch == '-' && i+1 < len(s) && s[i+1] == '-':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case ch == '"' || ch == '\'':
			var b strings.Builder
			j := i + 1
			closed := false
			for j < len(s) {
				if s[j] == ch {
					if j+1 < len(s) && s[j+1] == ch {
						b.WriteByte(ch)
						j += 2
						continue
					}
					closed = true
					j++
					break
				}
				b.WriteByte(s[j])
				j++
			}
			if !closed {
				return nil, &SyntaxError{fmt.Sprintf("unterminated quoted string at %q", s[i:])}
			}
			out = append(out, token{s: b.String(), quoted: true})
			i = j
		case ch == '=':
			out = append(out, token{s: "="})
			i++
		case isWordByte(ch):
			j := i
			for j < len(s) && isWordByte(s[j]) {
				j++
			}
			out = append(out, token{s: s[i:j]})
			i = j
		default:
			return nil, &SyntaxError{fmt.Sprintf("syntax error at %q", s[i:])}
		}
	}
	return out, nil
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '_' || c == '.' || c == ':' || c == '-' || c == '[' || c == ']' || c == '/' || c == '*' || c >= 0x80
}
