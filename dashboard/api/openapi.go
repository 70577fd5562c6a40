package api

import (
	_ "embed"

	"github.com/labstack/echo/v4"
)

// openapiJSON is the OpenAPI 3 document of every livedash endpoint, checked
// in next to this file. dashboard/openapi_test.go keeps it equal to the
// server's route table.
//
//go:embed openapi.json
var openapiJSON []byte

// OpenAPI returns the embedded OpenAPI document.
func OpenAPI() []byte { return openapiJSON }

func (a *API) openapi(c echo.Context) error {
	if aerr := ParseNoParams(c.QueryString()); aerr != nil {
		return aerr
	}
	return writeJSON(c, openapiJSON, noCache)
}
