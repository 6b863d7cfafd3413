// Package importcheck holds the test that keeps the layers apart: no
// module's code or tests import another module (the HTTP server core,
// modules/httpserver, aside), and nothing under internal/ imports app/,
// cmd/ or modules/. It runs go list -test -deps for each package under
// modules/ and internal/. It has no code of its own.
package importcheck
