// Package readme keeps the repository's README.md honest. It has no code of its own: its tests
// read the README's shell blocks and check that they run as written in bash and zsh (no `$VAR:`
// or `$VAR[`, which zsh reads as a modifier or a subscript: write `${VAR}:`), that every
// `make TARGET` they name is a target of the Makefile, and that every subcommand and flag they
// pass to a binary of cmd/ is one that binary's -h lists (and that -h exits 0).
package readme
