package api

import (
	"context"
	"net/http"
	"time"

	"github.com/shardline/shardline"
	"github.com/shardline/shardline/auth"
)

// UserStore keeps the router's users; etcdstore.Store is one. Errors wrap
// shardline.ErrInvalidUser, ErrInvalidTenant, ErrUserNotFound or
// ErrUserExists.
type UserStore interface {
	AddUser(ctx context.Context, u shardline.User) (shardline.User, error)
	GetUser(ctx context.Context, name string) (shardline.User, error)
	ListUsers(ctx context.Context) ([]shardline.User, error)
	SetUserVerifier(ctx context.Context, name, verifier string) (shardline.User, error)
	RemoveUser(ctx context.Context, name string) (int64, error)
}

// UserView is a user as the API shows it: never its verifier.
type UserView struct {
	Name string `json:"name"`
	// Kind is "app" or "admin".
	Kind string `json:"kind"`
	// Tenants bind an app user's sessions; empty when it is not bound.
	Tenants []string  `json:"tenants"`
	Created time.Time `json:"created"`
}

// UserList is the body of GET /v1/users.
type UserList struct {
	Users []UserView `json:"users"`
}

// CreateUserRequest is the body of POST /v1/users. Kind defaults to "app".
// Verifier is a SCRAM-SHA-256 verifier in PostgreSQL's format: the client
// makes it from the password (the CLI does), so no password reaches the
// server.
type CreateUserRequest struct {
	Name     string   `json:"name"`
	Kind     string   `json:"kind,omitempty"`
	Tenants  []string `json:"tenants,omitempty"`
	Verifier string   `json:"verifier"`
}

// SetVerifierRequest is the body of PUT /v1/users/{name}/verifier.
type SetVerifierRequest struct {
	Verifier string `json:"verifier"`
}

func userView(u shardline.User) UserView {
	v := UserView{Name: u.Name, Kind: string(u.Kind), Tenants: make([]string, len(u.Tenants)), Created: u.Created}
	for i, t := range u.Tenants {
		v.Tenants[i] = string(t)
	}
	return v
}

// users returns the user store, or a 501 when the server has none.
func (s *Server) userStore() (UserStore, error) {
	if s.users == nil {
		return nil, &httpError{status: http.StatusNotImplemented, msg: "this server keeps no users (hint: run the admin API of 'shardline up')"}
	}
	return s.users, nil
}

func checkVerifier(v string) error {
	if _, err := auth.ParseVerifier(v); err != nil {
		return badRequest("field \"verifier\": %v (hint: send a SCRAM-SHA-256 verifier in PostgreSQL's format, as 'shardline user add' makes it, never a password)", err)
	}
	return nil
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request) (int, any, error) {
	store, err := s.userStore()
	if err != nil {
		return 0, nil, err
	}
	var req CreateUserRequest
	if err := decode(w, r, maxBody, &req, false); err != nil {
		return 0, nil, err
	}
	if err := shardline.ValidateUserName(req.Name); err != nil {
		return 0, nil, err
	}
	if err := checkVerifier(req.Verifier); err != nil {
		return 0, nil, err
	}
	u := shardline.User{Name: req.Name, Kind: shardline.UserKind(req.Kind), Verifier: req.Verifier}
	if u.Kind == "" {
		u.Kind = shardline.UserApp
	}
	for _, t := range req.Tenants {
		u.Tenants = append(u.Tenants, shardline.TenantID(t))
	}
	if u, err = store.AddUser(r.Context(), u); err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, userView(u), nil
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) (int, any, error) {
	store, err := s.userStore()
	if err != nil {
		return 0, nil, err
	}
	users, err := store.ListUsers(r.Context())
	if err != nil {
		return 0, nil, err
	}
	out := UserList{Users: make([]UserView, len(users))}
	for i, u := range users {
		out.Users[i] = userView(u)
	}
	return http.StatusOK, out, nil
}

func (s *Server) showUser(w http.ResponseWriter, r *http.Request) (int, any, error) {
	store, err := s.userStore()
	if err != nil {
		return 0, nil, err
	}
	u, err := store.GetUser(r.Context(), r.PathValue("name"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, userView(u), nil
}

func (s *Server) setVerifier(w http.ResponseWriter, r *http.Request) (int, any, error) {
	store, err := s.userStore()
	if err != nil {
		return 0, nil, err
	}
	var req SetVerifierRequest
	if err := decode(w, r, maxBody, &req, false); err != nil {
		return 0, nil, err
	}
	name := r.PathValue("name")
	if err := shardline.ValidateUserName(name); err != nil {
		return 0, nil, err
	}
	if err := checkVerifier(req.Verifier); err != nil {
		return 0, nil, err
	}
	u, err := store.SetUserVerifier(r.Context(), name, req.Verifier)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, userView(u), nil
}

// removeUser answers with the user as it was.
func (s *Server) removeUser(w http.ResponseWriter, r *http.Request) (int, any, error) {
	store, err := s.userStore()
	if err != nil {
		return 0, nil, err
	}
	name := r.PathValue("name")
	u, err := store.GetUser(r.Context(), name)
	if err != nil {
		return 0, nil, err
	}
	if _, err := store.RemoveUser(r.Context(), name); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, userView(u), nil
}
