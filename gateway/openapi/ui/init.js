// Ours, not Swagger UI's: renders the gateway's own document. The URLs are relative to /docs, so
// that a proxy serving the gateway under a prefix keeps them working.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    validatorUrl: null,
    tryItOutEnabled: false,
    persistAuthorization: false,
  });
});
