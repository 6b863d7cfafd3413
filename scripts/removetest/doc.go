// Package removetest holds the test that a module is removable as the README
// says: it deletes modules/example (and the security module) from a copy of
// the repository and builds, vets and tests what is left. It has no code of
// its own.
package removetest
