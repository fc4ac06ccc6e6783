"""The Textual UI of stackdeck. Build the app with :func:`console.ui.app.create_app`."""
