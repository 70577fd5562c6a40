// Package route holds the one definition of an endpoint that a part of the
// server (the JSON API) contributes to the server's route table. It is a
// package of its own so that the part that defines routes and the server
// that mounts them both depend on it and not on each other: the API does
// not import the server, and the server does not import the API.
package route

import "github.com/labstack/echo/v4"

// Route is one endpoint: the server adds Handler for Method and Path under
// Name, behind its middleware chain like every other route.
type Route struct {
	Method, Path, Name string
	Handler            echo.HandlerFunc
}
