// Package doclinks holds the test that the README and docs/*.md point only
// at files that exist: every relative link, and every path under a tracked
// folder that they name in backquotes. It has no code of its own.
package doclinks
