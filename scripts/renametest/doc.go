// Package renametest holds the test of scripts/rename-module: it renames a
// copy of the repository, checks that neither the old module path nor the
// old service name is left anywhere, and builds, vets and tests the result.
// It has no code of its own.
package renametest
