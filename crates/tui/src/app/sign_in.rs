//! The sign-in / create-account form.

use ratatui_textarea::TextArea;

/// Which field has the cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Username,
    Password,
}

/// What the form is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    SigningIn,
    Creating,
}

/// The sign-in screen's state.
#[derive(Debug, Clone)]
pub struct SignInForm {
    pub username: TextArea<'static>,
    pub password: TextArea<'static>,
    pub field: Field,
    pub error: Option<String>,
    /// Set for the first sign-in message after an account was deleted, etc.
    pub info: Option<String>,
    pub pending: Option<Pending>,
}

impl SignInForm {
    pub fn new(user: Option<&str>) -> Self {
        let username = TextArea::new(vec![user.unwrap_or_default().to_string()]);
        let mut password = TextArea::default();
        password.set_mask_char('•');
        let mut form = Self {
            username,
            password,
            field: Field::Username,
            error: None,
            info: None,
            pending: None,
        };
        if user.is_some_and(|u| !u.is_empty()) {
            form.field = Field::Password;
        }
        form.username.move_cursor(ratatui_textarea::CursorMove::End);
        form
    }

    pub fn username_text(&self) -> String {
        self.username.lines().concat().trim().to_string()
    }

    pub fn password_text(&self) -> String {
        self.password.lines().concat()
    }

    pub fn field_mut(&mut self) -> &mut TextArea<'static> {
        match self.field {
            Field::Username => &mut self.username,
            Field::Password => &mut self.password,
        }
    }

    pub fn toggle_field(&mut self) {
        self.field = match self.field {
            Field::Username => Field::Password,
            Field::Password => Field::Username,
        };
    }

    /// Forgets the password (after success, or on sign-out).
    pub fn clear_password(&mut self) {
        let mut password = TextArea::default();
        password.set_mask_char('•');
        self.password = password;
    }
}
