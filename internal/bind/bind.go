// Package bind decodes and validates request bodies and turns every failure
// into the right problem response, so a handler stays three lines long:
//
//	var req EchoRequest
//	if !bind.JSON(c, &req) {
//		return
//	}
package bind

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/gin-gonic/gin/binding"
	"github.com/go-playground/validator/v10"

	"github.com/meshkit/meshkit/internal/problem"
)

// JSON decodes the request's JSON body into dst (a pointer to a struct with
// json and binding tags) and validates it. On failure it writes the problem,
// aborts the chain and returns false:
//
//   - 415 when Content-Type is not application/json (or a +json type),
//   - 413 when the body is over the route's cap,
//   - 400 when the body is empty or not well-formed JSON,
//   - 422 when a field has the wrong type or fails validation, naming the field.
func JSON(c *gin.Context, dst any) bool {
	if !IsJSON(c.GetHeader("Content-Type")) {
		problem.Abort(c, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
		return false
	}
	if err := c.ShouldBindWith(dst, binding.JSON); err != nil {
		problem.Write(c, FromError(err, dst))
		return false
	}
	return true
}

// IsJSON reports whether a Content-Type is JSON, the media type
// application/json or one ending in +json: what [JSON] accepts.
func IsJSON(contentType string) bool {
	mediaType, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mediaType == "application/json" || strings.HasSuffix(mediaType, "+json")
}

// FromError maps a decoding or validation error for dst to a problem.
func FromError(err error, dst any) *problem.Problem {
	var (
		tooLarge   *http.MaxBytesError
		syntax     *json.SyntaxError
		typeErr    *json.UnmarshalTypeError
		validation validator.ValidationErrors
	)
	switch {
	case errors.As(err, &tooLarge):
		return problem.New(http.StatusRequestEntityTooLarge,
			"request body is larger than "+strconv.FormatInt(tooLarge.Limit, 10)+" bytes")
	case errors.Is(err, io.EOF):
		return problem.New(http.StatusBadRequest, "request body is empty")
	case errors.As(err, &syntax):
		return problem.New(http.StatusBadRequest,
			"request body is not valid JSON (at byte "+strconv.FormatInt(syntax.Offset, 10)+")")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return problem.New(http.StatusBadRequest, "request body is not valid JSON (it ends too early)")
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			field = "(body)"
		}
		return invalid([]problem.FieldError{{Field: field, Reason: "must be " + jsonKind(typeErr.Type)}})
	case errors.As(err, &validation):
		fields := make([]problem.FieldError, 0, len(validation))
		for _, fe := range validation {
			fields = append(fields, problem.FieldError{
				Field:  jsonPath(reflect.TypeOf(dst), fe.StructNamespace()),
				Reason: reason(fe),
			})
		}
		return invalid(fields)
	default:
		return problem.New(http.StatusBadRequest, "request body could not be read")
	}
}

// invalid builds the 422 whose detail names every field.
func invalid(fields []problem.FieldError) *problem.Problem {
	parts := make([]string, len(fields))
	for i, f := range fields {
		parts[i] = f.Field + ": " + f.Reason
	}
	p := problem.New(http.StatusUnprocessableEntity, strings.Join(parts, "; "))
	p.Errors = fields
	return p
}

// jsonPath turns a validator struct namespace ("EchoRequest.Items[2].Name")
// into the JSON path the client sent ("items[2].name").
func jsonPath(t reflect.Type, namespace string) string {
	segments := strings.Split(namespace, ".")
	if len(segments) > 1 {
		segments = segments[1:] // the root type's name
	}
	out := make([]string, 0, len(segments))
	for _, seg := range segments {
		name, index, _ := strings.Cut(seg, "[")
		if index != "" {
			index = "[" + index
		}
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		jsonName := name
		if t.Kind() == reflect.Struct {
			if f, ok := t.FieldByName(name); ok {
				if tag, _, _ := strings.Cut(f.Tag.Get("json"), ","); tag != "" && tag != "-" {
					jsonName = tag
				}
				t = f.Type
			}
		}
		out = append(out, jsonName+index)
	}
	return strings.Join(out, ".")
}

// reason says in words which validation rule a field broke.
func reason(fe validator.FieldError) string {
	unit := ""
	switch fe.Kind() {
	case reflect.String:
		unit = " characters"
	case reflect.Slice, reflect.Array, reflect.Map:
		unit = " items"
	}
	switch fe.Tag() {
	case "required":
		return "is required"
	case "min", "gte":
		return "must be at least " + fe.Param() + unit
	case "max", "lte":
		return "must be at most " + fe.Param() + unit
	case "len":
		return "must be exactly " + fe.Param() + unit
	case "oneof":
		return "must be one of: " + fe.Param()
	default:
		return fmt.Sprintf("failed the %q rule", fe.Tag())
	}
}

// jsonKind names a Go type as the JSON kind a client must send.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	default:
		return "an object"
	}
}
