// Package renametest holds the test of scripts/rename-module: it renames a
// copy of the repository and builds and vets the result. It has no code of
// its own.
package renametest
