// Package recipetest holds the tests that follow the README's "Make it
// yours" recipes on a copy of the repository (scripts/new-module, then
// rename, middleware and a swapped part) and run the service built there.
// It has no code of its own.
package recipetest
