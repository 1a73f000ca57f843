// Command poolmgr is the Pool Manager PostgreSQL connection proxy.
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/poolmgr/poolmgr/internal/app"
	"github.com/poolmgr/poolmgr/internal/config"
)

const usage = `usage:
  poolmgr -c FILE | --config FILE     run the proxy
  poolmgr check-config -c FILE        validate a config file
  poolmgr version                     print the version
`

func main() {
	args := os.Args[1:]
	cmd := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	path, err := configFlag(args)
	switch {
	case cmd == "version":
		fmt.Println("poolmgr", app.Version)
		return
	case cmd == "help" || errors.Is(err, errHelp):
		fmt.Print(usage)
		return
	case err != nil:
		fmt.Fprintln(os.Stderr, "poolmgr:", err)
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	case cmd == "check-config":
		if err := config.Check(path); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(path + ": OK")
		return
	case cmd == "run":
		if err := app.Run(path); err != nil {
			fmt.Fprintln(os.Stderr, "poolmgr:", err)
			os.Exit(1)
		}
	default:
		fmt.Fprintf(os.Stderr, "poolmgr: unknown command %q\n%s", cmd, usage)
		os.Exit(2)
	}
}

var errHelp = errors.New("help")

func configFlag(args []string) (string, error) {
	path := ""
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-h" || a == "--help":
			return "", errHelp
		case a == "-c" || a == "--config":
			if i+1 >= len(args) {
				return "", fmt.Errorf("%s needs a file", a)
			}
			path = args[i+1]
			i++
		case strings.HasPrefix(a, "--config="):
			path = strings.TrimPrefix(a, "--config=")
		case strings.HasPrefix(a, "-c="):
			path = strings.TrimPrefix(a, "-c=")
		default:
			return "", fmt.Errorf("unexpected argument %q", a)
		}
	}
	if path == "" {
		return "", errors.New("no config file given (-c FILE)")
	}
	return path, nil
}
